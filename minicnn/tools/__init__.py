"""Applications of minicnn's public API (benchmark, placement study); the library never imports them."""
