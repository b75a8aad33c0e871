"""Manifests the Release service's tests share: the whole SPEC 2 example and bad ones with the
exact error each must give."""

from __future__ import annotations

# Every key of SPEC 2, each form at least once.
FULL_MANIFEST = """\
environment: [FOO, BAR=default]
release:
  command: bin/migrate --all
  service: worker
  timeout: 300
services:
  web:
    build: .
    command: bin/web
    port: https:5443
    ports: [5001, 5002]
    health: /health
    scale: {count: 2, cpu: 250, memory: 512}
    environment: [WORKERS=2, BAR=web]
    deployment: {minimum: 25, maximum: 150}
    termination: {grace: 45}
    internal: false
  worker:
    build: {path: worker, manifest: Dockerfile.worker}
    command: [bin/worker, --fast]
    port: http:8080
    health:
      path: /ready
      grace: 0
      interval: 10
      timeout: 3
    scale:
      count: 1-4
    internal: true
  api:
    image: registry.example/api:old
    port: 3000
  cache:
    image: registry.example/cache:1.4
"""
# What ImportBuild is given with FULL_MANIFEST: web and worker build; api has an image of
# its own and a built one too (the built one wins); cache runs its image: as it is.
FULL_IMAGES = {
    "web": "registry.example/myapp:web.1",
    "worker": "registry.example/myapp:worker.1",
    "api": "registry.example/myapp:api.1",
}

RELEASE_BLOCK = "services:\n  web:\n    image: x\nrelease:\n"

# (manifest, the whole error message). Each names the line, the path and the reason; unknown
# keys name the allowed ones.
BAD_MANIFESTS = [
    (
        "services:\n  web:\n    image: x\n    scale: {count: 0}\n",
        "manifest line 4: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (
        "services:\n  web:\n    image: x\n    scale:\n      count: two\n",
        "manifest line 5: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (
        "services:\n  web:\n    image: x\n    scale: {count: true}\n",
        "manifest line 4: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (
        "services:\n  web:\n    image: x\n    scale:\n      count: 4-1\n",
        "manifest line 5: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (
        "services:\n  web:\n    image: x\n    scale:\n      count: 0-3\n",
        "manifest line 5: services.web.scale.count must be a positive integer or a range like 1-4",
    ),
    (
        "services:\n  web:\n    image: x\n    scale:\n      count: 2\n      cpu: 0\n",
        "manifest line 6: services.web.scale.cpu must be a positive integer",
    ),
    (
        "services:\n  web:\n    image: x\n    scale:\n      count: 2\n      gpu: 1\n",
        "manifest line 6: unknown key services.web.scale.gpu (expected one of: count, cpu, memory)",
    ),
    (
        "services:\n  web:\n    port: 70000\n",
        "manifest line 3: services.web.port must be a port number from 1 to 65535 "
        "(optionally http: or https:)",
    ),
    (
        "services:\n  web:\n    port: tcp:80\n",
        "manifest line 3: services.web.port must be a port number from 1 to 65535 "
        "(optionally http: or https:)",
    ),
    (
        "services:\n  web:\n    port: https:0\n",
        "manifest line 3: services.web.port must be a port number from 1 to 65535 "
        "(optionally http: or https:)",
    ),
    (
        "services:\n  web:\n    ports:\n      - 80\n      - http:81\n",
        "manifest line 5: services.web.ports entries must be numbers from 1 to 65535",
    ),
    (
        "services:\n  web:\n    ports: 80\n",
        "manifest line 3: services.web.ports must be a list of ports",
    ),
    (
        "services:\n  web:\n    health: ready\n",
        "manifest line 3: services.web.health must be a path starting with /",
    ),
    (
        "services:\n  web:\n    health:\n      path: /h\n      retries: 3\n",
        "manifest line 5: unknown key services.web.health.retries "
        "(expected one of: grace, interval, path, timeout)",
    ),
    (
        "services:\n  web:\n    health:\n      interval: 0\n",
        "manifest line 4: services.web.health.interval must be a positive integer",
    ),
    (
        "services:\n  web:\n    deployment: {minimum: 120}\n",
        "manifest line 3: services.web.deployment.minimum must be an integer from 0 to 100",
    ),
    (
        "services:\n  web:\n    deployment:\n      maximum: 50\n",
        "manifest line 4: services.web.deployment.maximum must be an integer from 100 to 1000",
    ),
    (
        "services:\n  web:\n    deployment:\n      minimum: 50\n      surge: 3\n",
        "manifest line 5: unknown key services.web.deployment.surge "
        "(expected one of: maximum, minimum)",
    ),
    (
        "services:\n  web:\n    termination:\n      grace: -1\n",
        "manifest line 4: services.web.termination.grace must be a non-negative integer",
    ),
    (
        "services:\n  web:\n    termination:\n      timeout: 5\n",
        "manifest line 4: unknown key services.web.termination.timeout (expected one of: grace)",
    ),
    (
        "services:\n  web:\n    internal: yes please\n",
        "manifest line 3: services.web.internal must be true or false",
    ),
    (
        "services:\n  web:\n    build: ../outside\n",
        "manifest line 3: services.web.build must be a path inside the build context: ../outside",
    ),
    (
        "services:\n  web:\n    build: /srv/app\n",
        "manifest line 3: services.web.build must be a path inside the build context: /srv/app",
    ),
    (
        "services:\n  web:\n    build: app/../../x\n",
        "manifest line 3: services.web.build must be a path inside the build context: app/../../x",
    ),
    (
        "services:\n  web:\n    build:\n      path: .\n      manifest: ../Dockerfile\n",
        "manifest line 5: services.web.build.manifest must be a path inside the build context: "
        "../Dockerfile",
    ),
    (
        "services:\n  web:\n    build:\n      path: .\n      dockerfile: D\n",
        "manifest line 5: unknown key services.web.build.dockerfile "
        "(expected one of: manifest, path)",
    ),
    (
        "services:\n  web:\n    build: 5\n",
        "manifest line 3: services.web.build must be a path or a mapping",
    ),
    (
        "services:\n  web:\n    command: {a: b}\n",
        "manifest line 3: services.web.command must be text or a list of text",
    ),
    (
        'services:\n  web:\n    command: "bin/web \'unclosed"\n',
        "manifest line 3: services.web.command cannot be split into words: No closing quotation",
    ),
    (
        "services:\n  web:\n    imgae: x\n",
        "manifest line 3: unknown key services.web.imgae (expected one of: build, command, "
        "deployment, environment, health, image, internal, port, ports, scale, termination)",
    ),
    (
        "servcies:\n  web: {}\n",
        "manifest line 1: unknown key servcies (expected one of: environment, release, services)",
    ),
    (
        "services:\n  Web: {}\n",
        'manifest line 2: invalid service name "Web": use 1 to 30 lowercase letters, digits '
        'and "-", starting with a letter',
    ),
    ("services:\n  web: [1, 2]\n", "manifest line 2: services.web must be a mapping"),
    ("services: [web]\n", "manifest line 1: services must be a mapping of service names"),
    ("- a\n- b\n", "manifest line 1: the manifest must be a mapping (with a services key)"),
    (
        "environment: [FOO, 1BAD=x]\n",
        'manifest line 1: environment: invalid env key "1BAD": keys start with a letter or _ '
        "and hold only letters, digits and _",
    ),
    (
        "environment:\n  - FOO\n  - {a: b}\n",
        "manifest line 3: environment entries must be KEY or KEY=default",
    ),
    (
        "services:\n  web:\n    environment:\n      - A=1\n      - 2B\n",
        'manifest line 5: services.web.environment: invalid env key "2B": keys start with a '
        "letter or _ and hold only letters, digits and _",
    ),
    (
        "services:\n  web:\n    image: x\n  web:\n    image: y\n",
        'manifest line 4: duplicate key "web"',
    ),
    (
        "services:\n  web:\n    image: [unclosed\n",
        "manifest line 4: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "services:\n  web:\n\timage: x\n",
        "manifest line 3: invalid YAML: found character '\\t' that cannot start any token",
    ),
    # The release: block.
    (
        "release:\n  command: bin/migrate\n",
        "manifest line 1: release: a release command needs a service to run it",
    ),
    (
        "release:\n  command: bin/migrate\nservices: {}\n",
        "manifest line 1: release: a release command needs a service to run it",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  service: worker\n",
        "manifest line 6: release.service: no service named worker (expected one of: web)",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  timeout: 0\n",
        "manifest line 6: release.timeout must be an integer from 1 to 86400",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  timeout: -5\n",
        "manifest line 6: release.timeout must be an integer from 1 to 86400",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  timeout: 86401\n",
        "manifest line 6: release.timeout must be an integer from 1 to 86400",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  timeout: 10m\n",
        "manifest line 6: release.timeout must be an integer from 1 to 86400",
    ),
    (
        RELEASE_BLOCK + "  command: bin/migrate\n  timeout: true\n",
        "manifest line 6: release.timeout must be an integer from 1 to 86400",
    ),
    (
        "services:\n  web:\n    image: x\n  worker:\n    image: y\n"
        "release:\n  command: bin/migrate\n  service: [web]\n",
        "manifest line 8: release.service must be non-empty text",
    ),
    (RELEASE_BLOCK + "  service: web\n", "manifest line 4: release.command is required"),
    (RELEASE_BLOCK + "  command: []\n", "manifest line 5: release.command must not be empty"),
    (
        RELEASE_BLOCK + "  command: x\n  retries: 2\n",
        "manifest line 6: unknown key release.retries (expected one of: command, service, timeout)",
    ),
    (
        "services:\n  web:\n    image: x\nrelease: bin/migrate\n",
        "manifest line 4: release must be a mapping",
    ),
]
