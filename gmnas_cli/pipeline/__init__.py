"""What runs around every stage: runtime objects, predecessors, identity, config validation."""
