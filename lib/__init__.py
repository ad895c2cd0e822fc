"""paypoc's code, a package per role. Imports point one way: devtools -> api and worker -> store ->
runtime; the api also uses http, the plumbing."""
