"""Safe rollout: a new config commit reaches the fleet in waves, each wave moving only
when the waves before it published successful reports for that commit and soaked."""
