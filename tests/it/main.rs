mod support {}
