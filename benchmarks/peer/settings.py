"""Django settings for the peer (MicroPyramid's Django-CRM 0.9.0) as the benchmark runs it.

The package's own ``crm.settings`` reads a ``.env``, logs to ``server.log`` in the working folder
and names apps this run has no use for (the SES mail backend, template context processors of its
HTML pages); everything the API path runs is kept as the package has it: the same apps, models,
migrations, URL configuration (``crm.urls``), middleware, authentication (JWT first, as its
``REST_FRAMEWORK`` setting says) and pagination (``LimitOffsetPagination``, 10 a page).

The database comes from ``PEER_DATABASE_URL`` (``sqlite:///path`` or ``postgresql://...``).
Celery tasks the API queues go to an in-memory broker (``CELERY_BROKER_URL=memory://`` is set by
the driver before Celery loads): queued, not run, as crmcore's outbox queues its jobs.
"""

from __future__ import annotations

import datetime as dt
import os
from urllib.parse import unquote, urlsplit


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db (as SQLAlchemy writes them)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path[1:])}
    if parts.scheme.split("+")[0] in ("postgresql", "postgres"):
        return {"ENGINE": "django.db.backends.postgresql", "NAME": unquote(parts.path.lstrip("/")),
                "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    raise ValueError(f"PEER_DATABASE_URL: not a SQLite or PostgreSQL URL: {parts.scheme}://")


SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "benchmark-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "common",
    "accounts",
    "cases",
    "contacts",
    "emails",
    "leads",
    "opportunity",
    "planner",
    "phonenumber_field",
    "tasks",
    "invoices",
    "events",
    "teams",
    "rest_framework",
    "drf_yasg",
    "corsheaders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "corsheaders.middleware.CorsMiddleware",
]

ROOT_URLCONF = "crm.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "crm.wsgi.application"

DATABASES = {"default": _database(os.environ.get("PEER_DATABASE_URL", "sqlite:///peer.sqlite"))}
# the password hasher is not what is measured: logins happen once per run
PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
AUTH_USER_MODEL = "common.User"
TIME_ZONE = "Asia/Kolkata"
USE_I18N = True
USE_TZ = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = os.environ.get("PEER_MEDIA_ROOT", "/tmp/peer-media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
DOMAIN_NAME = "localhost:8000"
DEFAULT_FROM_EMAIL = ADMIN_EMAIL = MARKETING_REPLY_EMAIL = PASSWORD_RESET_MAIL_FROM_USER = ""
CELERY_BROKER_URL = "memory://"
APPLICATION_NAME = "bottlecrm"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"null": {"class": "logging.NullHandler"}},
           "loggers": {"django": {"handlers": ["null"], "level": "ERROR"}}}

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "rest_framework.views.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": (
        "rest_framework_jwt.authentication.JSONWebTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ),
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 10,
}
# a run outlasts the default five minutes of a token; the token is still checked on every request
JWT_AUTH = {"JWT_EXPIRATION_DELTA": dt.timedelta(hours=12)}
SWAGGER_SETTINGS = {"DEFAULT_INFO": "crm.urls.info",
                    "SECURITY_DEFINITIONS": {"api_key": {"type": "apiKey", "name": "Authorization", "in": "header"}}}
CORS_ORIGIN_ALLOW_ALL = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
