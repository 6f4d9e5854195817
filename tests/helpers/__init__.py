"""What several test modules share: `gradcheck` (finite differences), `oracle` (slow, plainly
right versions of the fast paths), `toy_cell` (a cell added by the recipe of `charrnn.cells`),
`train_helpers` (tiny runs through the command line), `export_helpers` (what the export tests
share: tiny runs, the numpy reference, a browser that may fetch nothing),
`serve_helpers` (a real server on a free port, for the serve tests) and
`make_fixture_checkpoints` (the script that wrote tests/fixtures/)."""
