"""Small data shipped with plismbench (see NOTICE.md for attribution)."""
