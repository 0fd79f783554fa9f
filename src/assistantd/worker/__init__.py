"""The run worker: executes queued runs, holds their leases, recovers and expires runs."""
