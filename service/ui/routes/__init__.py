"""The web pages' routers, one per audience: sign-in, compliance, front office, managers, models."""
