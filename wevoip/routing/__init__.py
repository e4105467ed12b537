"""Routing decisions: dialplans that normalise what was dialled to E.164, and (later) routes."""
