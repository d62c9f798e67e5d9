"""The service shell: configuration, the composition root, the embedded Redis and the `gateway`
CLI."""
