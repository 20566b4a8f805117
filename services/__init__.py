"""Deployable services: one module per service, each exposing a FastStream `app`."""
