"""gunicorn entry point: `gunicorn seatsvc.wsgi:app`.

Configuration comes from the process environment only (`make run` and the
`flask` CLI load `.env` for a developer; production sets real variables).
"""

from seatsvc.app import create_app

app = create_app()
