"""Helper scripts run by hand (not installed): `python -m tools.<name>`."""
