"""WSGI entry point: ``gunicorn wsgi:app``. A configuration error stops start-up with one line."""

import sys

from app import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"messenger-backend cannot start: {error}")
