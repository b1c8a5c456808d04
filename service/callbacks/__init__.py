"""Satisfaction callbacks on the service side: providers (agents' queue, SMS/IVR gateway) and
the glue between settings, the domain (`router.callbacks`) and the worker."""
