"""The benchmark sections; each module's ``run`` takes the lab (and the CLI's args) and returns a dict."""
