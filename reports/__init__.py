"""Finance reconciliation: every cent the providers moved matched to an entry of ours, and back."""
