"""Provider API clients: the only place that calls Stripe's or PayPal's API.

Each adapter takes our types in and gives our types back (``ProviderResult``) or raises our
``ProviderError`` with a stable ``code`` and whether a retry can help. Every call that moves money
carries our action id as the provider's idempotency key.
"""
