# GravityPM Ops: the Airflow image the docker-compose.yaml stack runs.
#
#   docker compose build        (or: docker build -t gravitypm-ops-airflow .)
#
# Keep the tag's Airflow version equal to the `apache-airflow==` pin in requirements.txt
# (tests/test_docker_compose.py checks it).
FROM apache/airflow:3.3.2-python3.13

# --- OS tools the DAGs call -------------------------------------------------------------
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        curl \
        logrotate \
        pigz \
        zstd \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# --- Python dependencies, as the airflow user (the official image installs Python packages as airflow) -------
USER airflow
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
# psycopg2-binary (sync) and asyncpg (async) are the drivers Airflow needs for its Postgres
# metadata database. They are deployment concerns, not dependencies of the DAGs, so they are
# installed here rather than listed in requirements.txt (whose venv runs on SQLite in tests).
RUN pip install --no-cache-dir \
        -r /opt/airflow/requirements.txt \
        -c /opt/airflow/constraints.txt \
        psycopg2-binary \
        asyncpg

# --- The suite --------------------------------------------------------------------------
# The control plane and the host agent both run these copies, so one image tag = one version of the
# DAGs and the library on both sides; the host agent needs no checkout. (docker-compose.single-box.yaml
# mounts the checkout over them read-only instead.)
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 deploy/pools.json /opt/airflow/deploy/pools.json

# Mount point of the `airflow-auth` volume (SimpleAuthManager's passwords file). Created here
# so a fresh named volume inherits this ownership; group 0 + g+rwX lets any AIRFLOW_UID write.
RUN mkdir -p /opt/airflow/auth && chmod 0770 /opt/airflow/auth

# The gravitypm_ops library.
ENV PYTHONPATH=/opt/airflow/include${PYTHONPATH:+:${PYTHONPATH}}
