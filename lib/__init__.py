"""paypoc's code, a package per role. Imports point one way: devtools -> api and worker -> store -> http."""
