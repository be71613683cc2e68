"""optiongrad's implementation modules (private: import from `optiongrad` instead)."""
