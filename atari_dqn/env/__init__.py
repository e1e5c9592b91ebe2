"""The Atari environment: one preprocessed game (`atari`), and N games stepped together in
worker processes (`vector`, `block`, `workers`)."""
