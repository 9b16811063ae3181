FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/app/var \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

# Dependencies in a layer of their own, so that a code change does not reinstall them.
# Empty packages stand in for the code just long enough for pip to read the metadata.
# The code itself runs from /app (the working directory comes first on sys.path), where
# templates/, static/ and locale/ sit beside it as settings.BASE_DIR expects.
COPY pyproject.toml ./
RUN mkdir -p deploycheck releases checks api \
    && touch deploycheck/__init__.py releases/__init__.py checks/__init__.py api/__init__.py \
    && pip install . \
    && pip uninstall -y deploycheck \
    && rm -rf build deploycheck releases checks api ./*.egg-info

# Named one by one so that a developer's .venv, var/ (a SQLite database) or .env never
# lands in the image.
COPY manage.py ./
COPY deploycheck/ deploycheck/
COPY releases/ releases/
COPY checks/ checks/
COPY api/ api/
COPY templates/ templates/
COPY static/ static/
COPY locale/ locale/

# Hashed, compressed static files, collected once into the image.
ENV STATIC_MANIFEST=1
RUN SECRET_KEY=collectstatic-only DEBUG=0 python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin deploycheck \
    && mkdir -p var/beat \
    && chown deploycheck:deploycheck var var/beat

USER deploycheck
EXPOSE 8000

CMD ["python", "-m", "deploycheck.run", "web"]
