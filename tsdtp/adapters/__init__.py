"""Model-family adapters: run one layer on the live tokens and expose what the engine needs."""
