"""presets/soulcaster."""
