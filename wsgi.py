"""WSGI entry point: ``gunicorn wsgi:app``. A configuration error stops start-up with one line (a JSON
record when JSON logs were asked for)."""

import os
import sys

from app import ConfigError, create_app
from app.logs import failure_line

try:
    app = create_app()
except ConfigError as error:
    sys.exit(failure_line(f"messenger-backend cannot start: {error}", os.environ))
