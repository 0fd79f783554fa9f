"""The run event bus: what a run emitted, in order, for live streams and replays."""
