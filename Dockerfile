# Same steps as `make run` on a fresh machine.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-dev.txt Makefile ./
RUN make install
COPY . .
ENV ASPL_DB=/data/library
VOLUME /data
EXPOSE 8501
CMD ["make", "run", "ASPL_DB=/data/library"]
