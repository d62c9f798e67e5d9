"""Sandbox tooling: never imported by production code (a test holds it to that).

Local fakes of the Stripe and PayPal APIs (``fake_providers``), real-shaped sample events
(``samples``) and a sender that signs them as the providers do (``simulator``, ``simulate``),
development certificates for PayPal signatures (``devcerts``), and the demo (``demo``,
``demo_flows``). Nothing here can move money.
"""
