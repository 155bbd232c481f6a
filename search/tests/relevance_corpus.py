"""A fixed corpus of realistic coding-agent sessions and labelled queries, for test_relevance.

SESSIONS: (external id, title, messages), each message a sync payload (without ids) built by
`user`, `assistant` and `tool_turn`: prompts, answers with code blocks, tool calls with their
JSON arguments (paths, shell commands) and tool results (error output, stack traces). Topics
overlap on purpose: near-duplicates (two ECONNREFUSED sessions, two parse_request sessions,
rebase vs squash, three useEffect bugs) and distractors that share words but not the problem
(too many clients vs connection refused, Vue's watch vs React's useEffect, nginx 502).

QUERIES: (query, kind, relevant external ids). Kinds: "keyword", "error" (an exact error
string), "path" (a file name or path), "identifier", "phrase" and "idea" (natural language
sharing few words with the relevant sessions: where semantic search should help). Relevance
is judged by what the user would want back, not by which sessions contain the words.
"""


def user(text):
    return {"role": "user", "textContent": text}


def assistant(text):
    return {"role": "assistant", "textContent": text}


def tool_turn(text, tool, args, result):
    """An assistant message with a text part, one tool call and its result (as plugins send them)."""
    return {
        "role": "assistant",
        "parts": [
            {"type": "text", "content": text},
            {"type": "tool-call", "content": {"toolName": tool, "args": args}},
            {"type": "tool-result", "content": result},
        ],
    }


SESSIONS = [
    # --- databases and connections ------------------------------------------------------------
    (
        "pg-econnrefused-compose",
        "API can't reach postgres inside docker compose",
        [
            user(
                "The node api container crashes on startup:\n"
                "Error: connect ECONNREFUSED 127.0.0.1:5432\n    at TCPConnectWrap.afterConnect [as oncomplete]"
            ),
            tool_turn(
                "Let me look at the compose file.",
                "Read",
                {"file_path": "/home/dev/shop/docker-compose.yml"},
                "services:\n  api:\n    build: .\n    environment:\n      DATABASE_URL: postgres://app:app@localhost:5432/app\n"
                "  db:\n    image: postgres:16",
            ),
            assistant(
                "Inside the api container `localhost` is the container itself, not the db service. Use the service "
                "name as host:\n\n```yaml\nDATABASE_URL: postgres://app:app@db:5432/app\n```\n\nAlso add "
                "`depends_on: db: condition: service_healthy` with a `pg_isready` healthcheck so the api waits."
            ),
            tool_turn(
                "Restarting the stack.",
                "Bash",
                {"command": "docker compose up -d --build && docker compose logs api --tail 20"},
                "api-1  | Listening on :3000\napi-1  | Connected to postgres at db:5432",
            ),
        ],
    ),
    (
        "pg-refused-local",
        "Postgres not running after brew upgrade",
        [
            user(
                "manage.py runserver fails: psycopg.OperationalError: connection failed: connection to server at "
                '"127.0.0.1", port 5432 failed: Connection refused. Is the server running on that host?'
            ),
            tool_turn(
                "Checking the service.",
                "Bash",
                {"command": "brew services list | grep postgres; pg_isready -h 127.0.0.1"},
                "postgresql@14 error  256 ~/Library/LaunchAgents/homebrew.mxcl.postgresql@14.plist\n"
                "127.0.0.1:5432 - no response",
            ),
            assistant(
                "The upgrade installed postgresql@16 but the old data directory belongs to 14, so the service fails "
                "to start. Either `brew services start postgresql@14` or run `pg_upgrade` into the 16 cluster:\n\n"
                "```sh\nbrew services stop postgresql@14\npg_upgrade -b /opt/homebrew/opt/postgresql@14/bin "
                "-B /opt/homebrew/opt/postgresql@16/bin -d ~/pg14 -D ~/pg16\n```"
            ),
            user("Started 14 again, runserver works now."),
        ],
    ),
    (
        "redis-econnrefused",
        "Queue worker cannot connect to Redis",
        [
            user(
                "Our bullmq worker logs this in a loop:\n[ioredis] Unhandled error event: Error: connect ECONNREFUSED "
                "127.0.0.1:6379\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)"
            ),
            tool_turn(
                "Is redis up?",
                "Bash",
                {"command": "redis-cli -h 127.0.0.1 ping"},
                "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
            ),
            assistant(
                "Redis isn't running on this machine; in production REDIS_URL points at the managed instance. Start "
                "it locally with `docker run -d -p 6379:6379 redis:7` and read the URL from the environment:\n\n"
                "```ts\nconst connection = new IORedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', "
                "{ maxRetriesPerRequest: null });\n```"
            ),
        ],
    ),
    (
        "pg-too-many-clients",
        "Postgres runs out of connections under load",
        [
            user(
                "During the load test the app starts failing with\n"
                "FATAL: sorry, too many clients already\nWe run 12 gunicorn workers on 4 pods."
            ),
            assistant(
                "Each worker holds its own connections: 4 pods x 12 workers x CONN_MAX_AGE persistent connections "
                "exceeds max_connections=100. Put PgBouncer in transaction pooling mode in front of the database, "
                "or lower the workers. With Django 5.1+ you can also use the psycopg pool:\n\n```python\n"
                'DATABASES["default"]["OPTIONS"] = {"pool": {"min_size": 2, "max_size": 8}}\n```'
            ),
            tool_turn(
                "Counting connections per client.",
                "Bash",
                {"command": "psql -c 'select client_addr, count(*) from pg_stat_activity group by 1 order by 2 desc'"},
                " client_addr | count\n-------------+-------\n 10.0.3.17   |    31\n 10.0.3.18   |    30",
            ),
        ],
    ),
    (
        "django-relation-missing",
        "Production 500s after deploy",
        [
            user(
                "After deploying the billing feature every page 500s. Sentry:\n"
                'django.db.utils.ProgrammingError: relation "billing_invoice" does not exist\n'
                'LINE 1: ...voice"."id", "billing_invoice"."number" FROM "billing_invoice"'
            ),
            tool_turn(
                "Checking which migrations ran in production.",
                "Bash",
                {"command": "heroku run python manage.py showmigrations billing"},
                "billing\n [ ] 0001_initial\n [ ] 0002_invoice_due_date",
            ),
            assistant(
                "The migrations were never applied: the Procfile has no release phase. Add\n\n```\n"
                "release: python manage.py migrate --noinput\n```\n\nand run `heroku run python manage.py migrate` "
                "once now."
            ),
        ],
    ),
    (
        "test-db-relation-missing",
        "pytest fails with missing table",
        [
            user(
                'Running pytest after pulling main:\nE   psycopg.errors.UndefinedTable: relation "accounts_profile" '
                'does not exist\nE   LINE 1: INSERT INTO "accounts_profile" ...'
            ),
            assistant(
                "The test database is reused (`--reuse-db` in pytest.ini) and predates the new migration "
                "accounts/0012_profile.py. Recreate it once:\n\n```sh\npytest --create-db\n```"
            ),
            tool_turn(
                "Running the suite with a fresh test database.",
                "Bash",
                {"command": "pytest --create-db -q"},
                "412 passed in 38.21s",
            ),
        ],
    ),
    (
        "django-migration-conflict",
        "Conflicting migrations in the orders app",
        [
            user(
                "CommandError: Conflicting migrations detected; multiple leaf nodes in the migration graph: "
                "(0007_order_discount, 0007_order_notes in orders). To fix them run 'python manage.py "
                "makemigrations --merge'"
            ),
            assistant("Two branches both added a 0007 migration. Both only add columns, so a merge migration is safe:"),
            tool_turn(
                "Creating the merge migration.",
                "Bash",
                {"command": "python manage.py makemigrations orders --merge --noinput"},
                "Created new merge migration /home/dev/shop/orders/migrations/0008_merge_20240611_1022.py",
            ),
            assistant("Done. Commit orders/migrations/0008_merge_20240611_1022.py together with both 0007 files."),
        ],
    ),
    (
        "django-migration-squash",
        "Too many migrations in catalog",
        [
            user(
                "The catalog app has 143 migrations and the test database takes 40 seconds to build. Can we compact them?"
            ),
            tool_turn(
                "Squashing the history.",
                "Bash",
                {"command": "python manage.py squashmigrations catalog 0001 0143"},
                "Created new squashed migration /srv/app/catalog/migrations/0001_squashed_0143_product_gtin.py\n"
                "Manual porting required: RunPython catalog.migrations.0057_fill_slugs.forwards",
            ),
            assistant(
                "squashmigrations created the squashed file but one RunPython can't be copied automatically. Copy "
                "the `forwards` function into the squashed migration, deploy it, and only later delete the old "
                "files and the `replaces` list."
            ),
        ],
    ),
    (
        "django-data-migration",
        "Backfill slugs for existing products",
        [
            user("We added Product.slug (unique). How do I fill it for the 20k existing rows?"),
            assistant(
                "Add the field nullable first, backfill with a data migration, then make it unique:\n\n```python\n"
                "def forwards(apps, schema_editor):\n    Product = apps.get_model('catalog', 'Product')\n    for p in "
                "Product.objects.filter(slug__isnull=True).iterator(chunk_size=1000):\n        p.slug = "
                "slugify(p.name)\n        p.save(update_fields=['slug'])\n\nclass Migration(migrations.Migration):\n"
                "    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]\n```"
            ),
            tool_turn(
                "Editing the model.",
                "Edit",
                {
                    "file_path": "catalog/models.py",
                    "old_string": "slug = models.SlugField(unique=True)",
                    "new_string": "slug = models.SlugField(null=True)",
                },
                "The file catalog/models.py has been updated.",
            ),
        ],
    ),
    (
        "django-n-plus-one",
        "Orders list page takes 6 seconds",
        [
            user("/orders/ is painfully slow. django-debug-toolbar shows 612 SQL queries for 200 orders."),
            tool_turn(
                "Looking at the view.",
                "Read",
                {"file_path": "orders/views.py"},
                "def order_list(request):\n    orders = Order.objects.filter(shop=request.shop)\n"
                "    return render(request, 'orders/list.html', {'orders': orders})",
            ),
            assistant(
                "Classic N+1: the template reads order.customer.name and loops over order.items. Fetch them up "
                "front:\n\n```python\norders = (Order.objects.filter(shop=request.shop)\n          "
                ".select_related('customer')\n          .prefetch_related('items__product'))\n```"
            ),
            user("Down to 4 queries and 180 ms, thanks."),
        ],
    ),
    (
        "django-models-refactor",
        "Split the shop models into a package",
        [
            user("src/shop/models.py is 2400 lines. Split it into a models package, one module per aggregate."),
            tool_turn(
                "Reading the current module.",
                "Read",
                {"file_path": "/home/dev/shop/src/shop/models.py"},
                "class Customer(models.Model): ...\nclass Order(models.Model): ...\nclass Invoice(models.Model): ...",
            ),
            tool_turn(
                "Creating the package.",
                "Bash",
                {"command": "mkdir -p src/shop/models && git mv src/shop/models.py src/shop/models/legacy.py"},
                "",
            ),
            assistant(
                "Created src/shop/models/__init__.py re-exporting Customer, Order and Invoice so imports like "
                "`from shop.models import Order` keep working, and moved each class into customers.py, orders.py and "
                "invoices.py. `makemigrations --check` reports no changes."
            ),
        ],
    ),
    # --- React and frontend ---------------------------------------------------------------------
    (
        "react-useeffect-twice",
        "Effect runs twice in development",
        [
            user("Why does my useEffect fire twice on mount? The analytics event is sent two times in dev."),
            assistant(
                "React 18's StrictMode mounts, unmounts and remounts every component in development to surface "
                "missing cleanups. It doesn't happen in production. Return a cleanup, or guard the side effect:\n\n"
                "```jsx\nuseEffect(() => {\n  const controller = new AbortController();\n  track('page_view', "
                "{ signal: controller.signal });\n  return () => controller.abort();\n}, []);\n```"
            ),
            tool_turn(
                "Checking where StrictMode is enabled.",
                "Grep",
                {"pattern": "StrictMode", "path": "src"},
                "src/main.tsx:8:  <React.StrictMode>",
            ),
        ],
    ),
    (
        "react-useeffect-deps",
        "Users page keeps refetching forever",
        [
            user(
                "The UsersPage component hammers /api/users: the network tab shows hundreds of requests and the "
                "page re-renders nonstop."
            ),
            tool_turn(
                "Reading the component.",
                "Read",
                {"file_path": "src/pages/UsersPage.tsx"},
                "const filters = { active: true };\nuseEffect(() => {\n  fetchUsers(filters).then(setUsers);\n}, "
                "[filters]);",
            ),
            assistant(
                "`filters` is a new object on every render, so the dependency changes every time, the effect runs, "
                "setUsers re-renders, and around it goes. Memoize it or depend on primitives:\n\n```tsx\nconst "
                "filters = useMemo(() => ({ active: true }), []);\n```\n\nThe eslint rule react-hooks/exhaustive-deps "
                "would have flagged it."
            ),
        ],
    ),
    (
        "react-stale-closure",
        "Timer shows the old count",
        [
            user("My countdown uses setInterval inside useEffect but `count` is always 10 in the callback."),
            assistant(
                "The interval callback closes over the `count` of the first render (a stale closure). Use the "
                "functional updater so you never read the captured value:\n\n```jsx\nuseEffect(() => {\n  const id = "
                "setInterval(() => setCount(c => c - 1), 1000);\n  return () => clearInterval(id);\n}, []);\n```"
            ),
            tool_turn(
                "Applying the fix.",
                "Edit",
                {
                    "file_path": "src/components/Countdown.jsx",
                    "old_string": "setCount(count - 1)",
                    "new_string": "setCount(c => c - 1)",
                },
                "Updated src/components/Countdown.jsx",
            ),
        ],
    ),
    (
        "react-memo-perf",
        "Typing in the search box lags on the orders table",
        [
            user("Each keystroke in the filter input re-renders all 2,000 rows of OrdersTable and the UI stutters."),
            tool_turn(
                "Profiling a render.",
                "Bash",
                {"command": "npx react-scan http://localhost:5173/orders"},
                "OrdersTable rendered 2000 x OrderRow (41ms) on every input change",
            ),
            assistant(
                "Wrap OrderRow in React.memo, pass stable callbacks with useCallback, and compute the filtered "
                "rows with useMemo. For 2,000 rows also virtualize the list with @tanstack/react-virtual:\n\n```tsx\n"
                "const OrderRow = React.memo(function OrderRow({ order, onSelect }) { ... });\n```"
            ),
        ],
    ),
    (
        "react-hook-form-zod",
        "Signup form validation",
        [
            user(
                "Set up the signup form with react-hook-form and zod: email, password with 12+ chars, confirm password."
            ),
            assistant(
                "```tsx\nconst schema = z.object({\n  email: z.string().email(),\n  password: z.string().min(12),\n"
                "  confirm: z.string(),\n}).refine(d => d.password === d.confirm, { path: ['confirm'], message: "
                "'Passwords do not match' });\nconst form = useForm({ resolver: zodResolver(schema) });\n```"
            ),
            tool_turn(
                "Installing the resolver.",
                "Bash",
                {"command": "npm install react-hook-form zod @hookform/resolvers"},
                "added 3 packages, audited 812 packages in 4s",
            ),
        ],
    ),
    (
        "vue-watch-twice",
        "Vue watcher fires twice",
        [
            user("In my Vue 3 component a watch on route.params.id triggers twice when navigating between products."),
            assistant(
                "You have both `immediate: true` and an onMounted call that loads the product, so the first load "
                "happens twice. Drop the onMounted call:\n\n```js\nwatch(() => route.params.id, loadProduct, "
                "{ immediate: true });\n```"
            ),
            user("Removed onMounted, the product now loads once per navigation."),
        ],
    ),
    # --- CI -------------------------------------------------------------------------------------
    (
        "ci-cache-npm",
        "GitHub Actions reinstalls node_modules every run",
        [
            user("Our workflow spends 3 minutes on npm ci each run. Can we cache it?"),
            tool_turn(
                "Reading the workflow.",
                "Read",
                {"file_path": ".github/workflows/ci.yml"},
                "- uses: actions/checkout@v4\n- uses: actions/setup-node@v4\n  with:\n    node-version: 20\n"
                "- run: npm ci",
            ),
            assistant(
                "setup-node can cache the npm download cache keyed on the lockfile:\n\n```yaml\n- uses: "
                "actions/setup-node@v4\n  with:\n    node-version: 20\n    cache: npm\n```\n\nOr explicitly with "
                "actions/cache and `key: npm-${{ hashFiles('package-lock.json') }}`. npm ci then takes about 25s."
            ),
        ],
    ),
    (
        "ci-cache-pip",
        "Python dependencies downloaded on every CI run",
        [
            user("pip install -r requirements.txt takes ages in CI even though requirements rarely change."),
            assistant(
                "Use setup-python's built-in cache:\n\n```yaml\n- uses: actions/setup-python@v5\n  with:\n    "
                "python-version: '3.12'\n    cache: pip\n    cache-dependency-path: requirements*.txt\n```"
            ),
            tool_turn(
                "Checking the cache hit on the last run.",
                "Bash",
                {"command": "gh run view 9182736 --log | grep -i cache"},
                "Cache restored from key: setup-python-Linux-python-3.12-pip-6c1f0e",
            ),
            assistant("Cache hit: the install step went from 2m10s to 14s."),
        ],
    ),
    (
        "ci-docker-layer-cache",
        "Docker image rebuilt from scratch in CI",
        [
            user("The docker build step in the deploy workflow rebuilds every layer even when only app code changed."),
            assistant(
                "Each runner starts empty, so there is no layer cache. Use buildx with the GitHub Actions cache "
                "backend:\n\n```yaml\n- uses: docker/build-push-action@v6\n  with:\n    cache-from: type=gha\n    "
                "cache-to: type=gha,mode=max\n```\n\nand copy requirements.txt before the source in the Dockerfile so "
                "the install layer is reused."
            ),
            tool_turn(
                "Reordering the Dockerfile.",
                "Edit",
                {
                    "file_path": "Dockerfile",
                    "old_string": "COPY . /app",
                    "new_string": "COPY requirements.txt /app/\nRUN pip install -r requirements.txt\nCOPY . /app",
                },
                "Updated Dockerfile",
            ),
        ],
    ),
    (
        "ci-matrix-py312",
        "CI fails only on Python 3.12",
        [
            user("The matrix job for 3.12 fails, 3.10 and 3.11 pass."),
            tool_turn(
                "Fetching the failing log.",
                "Bash",
                {"command": "gh run view --job 2231 --log-failed"},
                "ModuleNotFoundError: No module named 'distutils'\n  File \"setup.py\", line 3, in <module>\n"
                "    from distutils.core import setup",
            ),
            assistant(
                "distutils was removed in Python 3.12 (PEP 632). Import from setuptools instead, or better move the "
                "metadata to pyproject.toml."
            ),
        ],
    ),
    # --- Docker ---------------------------------------------------------------------------------
    (
        "docker-network-containers",
        "Containers can't talk to each other",
        [
            user(
                "I started the web and worker containers with plain docker run. curl http://worker:8000 from web "
                "says: Could not resolve host: worker"
            ),
            assistant(
                "Containers on the default bridge network don't get DNS names. Create a user-defined network and "
                "attach both:\n\n```sh\ndocker network create appnet\ndocker run -d --network appnet --name worker "
                "worker:latest\ndocker run -d --network appnet --name web web:latest\n```\n\nOr move both into "
                "docker-compose.yml, where services share a network and resolve each other by service name."
            ),
            tool_turn(
                "Verifying name resolution.",
                "Bash",
                {"command": "docker network inspect appnet && docker exec web getent hosts worker"},
                '[{"Name": "appnet", "Driver": "bridge", ...}]\n172.20.0.3      worker',
            ),
        ],
    ),
    (
        "docker-host-internal",
        "Call a service on the host from a container",
        [
            user("My container needs the Ollama server running on my laptop at port 11434. localhost doesn't work."),
            assistant(
                "Use host.docker.internal. On Linux it needs an explicit mapping in docker-compose.yml:\n\n```yaml\n"
                'services:\n  app:\n    extra_hosts:\n      - "host.docker.internal:host-gateway"\n    environment:\n'
                "      OLLAMA_URL: http://host.docker.internal:11434\n```"
            ),
            tool_turn(
                "Testing from inside the container.",
                "Bash",
                {"command": "docker compose exec app curl -s http://host.docker.internal:11434/api/tags"},
                '{"models":[{"name":"llama3:8b"}]}',
            ),
        ],
    ),
    (
        "docker-port-allocated",
        "docker compose up fails on port 8080",
        [
            user(
                "docker compose up gives: Error response from daemon: driver failed programming external "
                "connectivity on endpoint web-1: Bind for 0.0.0.0:8080 failed: port is already allocated"
            ),
            tool_turn(
                "Finding what holds the port.",
                "Bash",
                {"command": "docker ps --filter publish=8080; sudo lsof -i :8080"},
                "CONTAINER ID   IMAGE        PORTS\n3f2a9c1b77d0   old-web:dev  0.0.0.0:8080->80/tcp",
            ),
            assistant(
                "A container from another project still publishes 8080. Stop it (`docker stop 3f2a9c1b77d0`) or "
                'change the mapping in docker-compose.yml to "8081:80".'
            ),
        ],
    ),
    (
        "docker-image-size",
        "Python image is 1.9 GB",
        [
            user("Our Django image is 1.9 GB. How do I make it smaller?"),
            assistant(
                "Use a multi-stage build: build wheels in a builder stage, install them into python:3.12-slim, and "
                "don't ship gcc or the pip cache:\n\n```dockerfile\nFROM python:3.12 AS build\nRUN pip wheel -w "
                "/wheels -r requirements.txt\nFROM python:3.12-slim\nCOPY --from=build /wheels /wheels\nRUN pip "
                "install --no-cache-dir /wheels/*\n```"
            ),
            tool_turn(
                "Comparing sizes.",
                "Bash",
                {"command": "docker images shop --format '{{.Tag}} {{.Size}}'"},
                "slim 212MB\nlatest 1.91GB",
            ),
        ],
    ),
    # --- auth -----------------------------------------------------------------------------------
    (
        "jwt-expired",
        "Users logged out right after signing in",
        [
            user(
                "Some users get 401 seconds after login. The API logs show\njwt.exceptions.ExpiredSignatureError: "
                "Signature has expired"
            ),
            tool_turn(
                "Reading the token code.",
                "Read",
                {"file_path": "api/auth/tokens.py"},
                "payload = {'sub': user.id, 'exp': datetime.now() + timedelta(minutes=15)}",
            ),
            assistant(
                "`datetime.now()` is local time but PyJWT compares `exp` with UTC, so in UTC+1 tokens are born "
                "already expired for the first hour... Use an aware UTC timestamp and allow a little clock skew:\n\n"
                "```python\nexp = datetime.now(timezone.utc) + timedelta(minutes=15)\njwt.decode(token, key, "
                "algorithms=['HS256'], leeway=30)\n```"
            ),
        ],
    ),
    (
        "jwt-refresh-rotation",
        "Refresh token rotation",
        [
            user("Implement refresh tokens for the mobile app: short access tokens, long refresh tokens, rotation."),
            assistant(
                "Access token: 10 minutes, signed JWT. Refresh token: opaque random string stored hashed in a "
                "refresh_tokens table with a family id. On /auth/refresh issue a new pair and revoke the old refresh "
                "token; if a revoked token is presented again, revoke the whole family (reuse detection)."
            ),
            tool_turn(
                "Creating the model.",
                "Write",
                {"file_path": "api/auth/models.py", "content": "class RefreshToken(models.Model): ..."},
                "File created successfully at: api/auth/models.py",
            ),
        ],
    ),
    (
        "oauth-redirect-mismatch",
        "Google sign-in fails with redirect_uri_mismatch",
        [
            user("Error 400: redirect_uri_mismatch when clicking Sign in with Google on staging."),
            assistant(
                "The callback URL sent is http://staging.example.com/accounts/google/login/callback/ (http, because "
                "the app sits behind the load balancer). Set SECURE_PROXY_SSL_HEADER so Django builds https URLs, "
                "and register the exact https URL in the Google console."
            ),
            tool_turn(
                "Adding the proxy header setting.",
                "Edit",
                {
                    "file_path": "config/settings/staging.py",
                    "new_string": "SECURE_PROXY_SSL_HEADER = ('HTTP_X_FORWARDED_PROTO', 'https')",
                },
                "Updated config/settings/staging.py",
            ),
        ],
    ),
    (
        "cookie-samesite",
        "Session cookie not sent from the app subdomain",
        [
            user(
                "The SPA on app.example.com calls api.example.com with credentials: 'include' but the API sees no session."
            ),
            assistant(
                "Browsers drop cross-site cookies unless they are SameSite=None; Secure. Set\n\n```python\n"
                "SESSION_COOKIE_SAMESITE = 'None'\nSESSION_COOKIE_SECURE = True\nCSRF_TRUSTED_ORIGINS = "
                "['https://app.example.com']\n```\n\nand CORS_ALLOW_CREDENTIALS = True."
            ),
            user("Works in Chrome now; Safari still blocks it unless both are under the same site, which they are."),
        ],
    ),
    # --- tests ----------------------------------------------------------------------------------
    (
        "flaky-test-midnight",
        "Test fails only late at night",
        [
            user("test_invoice_due_date fails on CI runs after 23:00 and passes during the day."),
            tool_turn(
                "Running it with a frozen clock.",
                "Bash",
                {"command": "pytest tests/test_invoices.py::test_invoice_due_date -p no:randomly"},
                "E   AssertionError: assert datetime.date(2024, 6, 12) == datetime.date(2024, 6, 11)",
            ),
            assistant(
                "The code uses timezone.now().date() (UTC) and the test uses date.today() (local time), which "
                "differ around midnight. Freeze time in the test with time_machine and compare the same kind of date."
            ),
        ],
    ),
    (
        "flaky-test-order",
        "Suite passes test by test but fails together",
        [
            user(
                "test_discount_applied passes on its own (pytest -k discount) but fails in the full run. With "
                "pytest-randomly the failing test changes every time."
            ),
            assistant(
                "That's leaked state between tests. A module-level cache in pricing/rules.py (`_RULES = {}`) is "
                "filled by one test and read by another. Clear it in a fixture:\n\n```python\n@pytest.fixture("
                "autouse=True)\ndef _clear_rules():\n    rules._RULES.clear()\n```"
            ),
            tool_turn(
                "Bisecting the order.",
                "Bash",
                {"command": "pytest -p randomly -p no:cacheprovider --randomly-seed=1234 tests/pricing"},
                "FAILED tests/pricing/test_discounts.py::test_discount_applied - KeyError: 'SUMMER24'",
            ),
        ],
    ),
    (
        "flaky-playwright",
        "Playwright checkout test times out sometimes",
        [
            user("The e2e checkout test fails about 1 in 10 runs: TimeoutError: page.click: Timeout 30000ms exceeded."),
            assistant(
                "The test clicks 'Pay' before the Stripe iframe has loaded. Wait on a web-first assertion instead "
                "of a fixed sleep:\n\n```ts\nawait expect(page.frameLocator('#card').locator('input')).toBeVisible();"
                "\nawait page.getByRole('button', { name: 'Pay' }).click();\n```"
            ),
            tool_turn(
                "Running it 50 times.",
                "Bash",
                {"command": "npx playwright test e2e/checkout.spec.ts --repeat-each=50"},
                "50 passed (3.1m)",
            ),
        ],
    ),
    (
        "flaky-asyncio",
        "Intermittent failure in the websocket consumer test",
        [
            user("tests/test_consumer.py fails randomly: RuntimeError: Task got Future attached to a different loop"),
            assistant(
                "The client fixture is session-scoped and created on another event loop than the test. Make the "
                "fixture function-scoped or set asyncio_default_fixture_loop_scope = session consistently in "
                "pytest.ini."
            ),
            tool_turn(
                "Checking the fix.",
                "Bash",
                {"command": "pytest tests/test_consumer.py --count=30 -q"},
                "30 passed in 12.4s",
            ),
        ],
    ),
    # --- performance ----------------------------------------------------------------------------
    (
        "slow-query-index",
        "Dashboard query takes 8 seconds",
        [
            user("The admin dashboard's 'recent events per account' query takes 8s on the 40M-row events table."),
            tool_turn(
                "Explaining the query.",
                "Bash",
                {
                    "command": 'psql -c "EXPLAIN ANALYZE SELECT * FROM events WHERE account_id = 42 ORDER BY created_at '
                    'DESC LIMIT 50"'
                },
                "Parallel Seq Scan on events  (cost=0.00..912345.00 rows=1203 width=96) (actual "
                "time=0.05..7981.3 rows=1180 loops=3)",
            ),
            assistant(
                "A sequential scan over 40M rows. Add a composite index matching the filter and the sort:\n\n```sql\n"
                "CREATE INDEX CONCURRENTLY events_account_created_idx ON events (account_id, created_at DESC);\n```\n\n"
                "After it the plan is an Index Scan taking 0.4 ms."
            ),
        ],
    ),
    (
        "node-memory-leak",
        "Node service memory grows until it is OOM killed",
        [
            user(
                "The notifications service's RSS climbs ~50MB/hour and it dies with FATAL ERROR: Reached heap "
                "limit Allocation failed - JavaScript heap out of memory. Also seeing MaxListenersExceededWarning."
            ),
            assistant(
                "The warning is the clue: every request adds a listener to the shared emitter and never removes "
                "it. Take two heap snapshots with --inspect and compare. The fix:\n\n```js\nemitter.once('done', "
                "handler); // or emitter.off('done', handler) in finally\n```"
            ),
            tool_turn(
                "Finding the listener.",
                "Grep",
                {"pattern": "emitter.on\\(", "path": "src/notifications"},
                "src/notifications/send.js:22:  emitter.on('done', handler);",
            ),
        ],
    ),
    (
        "python-profiling",
        "CSV import takes 20 minutes",
        [
            user("import_products management command is very slow for a 300k-line CSV. Where is the time going?"),
            tool_turn(
                "Profiling it.",
                "Bash",
                {"command": "py-spy record -o profile.svg -- python manage.py import_products data/products.csv"},
                "Wrote profile to profile.svg: 61% in Model.save, 22% in SlugField.pre_save",
            ),
            assistant(
                "Most time is one INSERT per row. Build objects in memory and use bulk_create with batch_size=1000; "
                "that takes it to about 40 seconds."
            ),
        ],
    ),
    (
        "webpack-bundle",
        "Main bundle is 4 MB",
        [
            user("Our webpack main.js is 4 MB and first load is slow on mobile."),
            tool_turn(
                "Analyzing the bundle.",
                "Bash",
                {"command": "npx source-map-explorer dist/main.*.js --html report.html"},
                "moment.js 31.2%  lodash 18.7%  chart.js 12.0%",
            ),
            assistant(
                "Replace moment with date-fns, import lodash functions individually (`import debounce from "
                "'lodash/debounce'`), and lazy-load the charts route with React.lazy and a dynamic import()."
            ),
        ],
    ),
    # --- CSS ------------------------------------------------------------------------------------
    (
        "css-center",
        "Vertically center the empty state",
        [
            user("How do I center the empty-state box vertically and horizontally inside the panel?"),
            assistant(
                "```css\n.panel {\n  display: flex;\n  align-items: center;\n  justify-content: center;\n  "
                "min-height: 100%;\n}\n```\n\nor `display: grid; place-items: center;`."
            ),
            user("The grid version is shorter, using that."),
        ],
    ),
    (
        "css-grid-cards",
        "Responsive card grid",
        [
            user("Cards should wrap: as many 240px-wide columns as fit, stretching to fill the row."),
            assistant(
                "```css\n.cards {\n  display: grid;\n  grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));\n"
                "  gap: 1rem;\n}\n```\n\nUse auto-fit instead of auto-fill if a single row should stretch."
            ),
            tool_turn(
                "Applying it.",
                "Edit",
                {
                    "file_path": "src/styles/cards.css",
                    "old_string": "display: flex; flex-wrap: wrap;",
                    "new_string": "display: grid;",
                },
                "Updated src/styles/cards.css",
            ),
        ],
    ),
    (
        "css-sticky",
        "Sticky table header doesn't stick",
        [
            user("I set position: sticky; top: 0 on the thead but it scrolls away with the table."),
            tool_turn(
                "Looking for overflow on the ancestors.",
                "Grep",
                {"pattern": "overflow", "path": "src/styles/table.css"},
                "12:.table-wrapper { overflow: hidden; }",
            ),
            assistant(
                "An ancestor with overflow: hidden becomes the scroll container, so sticky sticks to it instead of "
                "the page. Use overflow: auto with a max-height on .table-wrapper, or remove the overflow."
            ),
        ],
    ),
    (
        "css-zindex-modal",
        "Modal shows up behind the navbar",
        [
            user("The modal has z-index: 9999 and still renders under the fixed navbar (z-index: 100)."),
            assistant(
                "The modal lives inside .page, which has `transform: translateZ(0)` and so creates its own stacking "
                "context: the 9999 only counts inside .page. Render the modal in a portal attached to document.body."
            ),
            tool_turn(
                "Moving the modal to a portal.",
                "Edit",
                {"file_path": "src/components/Modal.tsx", "new_string": "return createPortal(dialog, document.body);"},
                "Updated src/components/Modal.tsx",
            ),
        ],
    ),
    # --- Kubernetes -----------------------------------------------------------------------------
    (
        "k8s-crashloop",
        "API pod in CrashLoopBackOff",
        [
            user("After the last deploy the api pod restarts constantly."),
            tool_turn(
                "Checking the pod.",
                "Bash",
                {"command": "kubectl get pods -n prod && kubectl logs api-7d9f8b6c4-x2k9q -n prod --previous"},
                "api-7d9f8b6c4-x2k9q   0/1   CrashLoopBackOff   7 (2m ago)\nKeyError: 'DATABASE_URL'",
            ),
            assistant(
                "The container exits because DATABASE_URL is missing: the new deployment references the secret "
                "`api-env` which doesn't exist in prod. Create it (`kubectl create secret generic api-env "
                "--from-env-file=.env.prod`) and the pod will start."
            ),
        ],
    ),
    (
        "k8s-imagepull",
        "ImagePullBackOff from the private registry",
        [
            user("New pods are stuck in ImagePullBackOff: pull access denied for registry.example.com/shop/api."),
            assistant(
                "The namespace has no credentials for the registry. Create a docker-registry secret and reference "
                "it:\n\n```yaml\nspec:\n  imagePullSecrets:\n    - name: regcred\n```"
            ),
            tool_turn(
                "Describing the pod.",
                "Bash",
                {"command": "kubectl describe pod api-5c6d7f-abcde -n staging"},
                'Failed to pull image "registry.example.com/shop/api:1.4.2": 401 Unauthorized',
            ),
        ],
    ),
    (
        "k8s-oomkilled",
        "Celery worker pods keep getting OOMKilled",
        [
            user("The worker pods restart every few hours."),
            tool_turn(
                "Looking at the last state.",
                "Bash",
                {"command": "kubectl get pod worker-0 -o jsonpath='{.status.containerStatuses[0].lastState}'"},
                '{"terminated":{"exitCode":137,"reason":"OOMKilled"}}',
            ),
            assistant(
                "Exit code 137 / OOMKilled: the container exceeded resources.limits.memory (512Mi). The report task "
                "loads whole querysets into memory; raise the limit to 1Gi and set worker_max_memory_per_child so "
                "celery recycles bloated processes."
            ),
        ],
    ),
    (
        "k8s-ingress-404",
        "Ingress returns 404 for every path",
        [
            user("All requests through the ingress return the nginx 404 page. The service works with port-forward."),
            assistant(
                "The Ingress has no ingressClassName, so the nginx controller ignores it. Add `ingressClassName: "
                "nginx`, and use `pathType: Prefix` for /api."
            ),
            tool_turn(
                "Applying the manifest.",
                "Bash",
                {"command": "kubectl apply -f k8s/ingress.yaml && curl -sI https://shop.example.com/api/health"},
                "ingress.networking.k8s.io/shop configured\nHTTP/2 200",
            ),
        ],
    ),
    # --- parsing and regex ----------------------------------------------------------------------
    (
        "regex-nginx-logs",
        "Parse nginx access logs",
        [
            user("Write a function that parses nginx combined log lines into dicts."),
            assistant(
                "```python\nLINE = re.compile(\n    r'(?P<ip>\\S+) \\S+ \\S+ \\[(?P<time>[^\\]]+)\\] \"(?P<method>\\S+) "
                "(?P<path>\\S+) \\S+\" (?P<status>\\d{3}) (?P<size>\\d+|-)'\n)\n\ndef parse_log_line(line):\n    "
                "m = LINE.match(line)\n    return m.groupdict() if m else None\n```"
            ),
            tool_turn(
                "Trying it on the sample.",
                "Bash",
                {
                    "command": "python -c 'from logs import parse_log_line; print(parse_log_line(open(\"access.log\").readline()))'"
                },
                "{'ip': '10.0.0.5', 'time': '11/Jun/2024:10:22:01 +0000', 'method': 'GET', 'path': '/health', "
                "'status': '200', 'size': '2'}",
            ),
        ],
    ),
    (
        "regex-catastrophic",
        "Email validation hangs the worker",
        [
            user("A request with a long email string pins a CPU at 100% for minutes. py-spy shows it in re.match."),
            assistant(
                "The pattern `^([a-zA-Z0-9]+)*@` has nested quantifiers: on a non-matching input the engine tries "
                "exponentially many ways to split the string (catastrophic backtracking, ReDoS). Remove the nested "
                "repetition: `^[a-zA-Z0-9]+@`, and cap the input length before matching."
            ),
            tool_turn(
                "Timing the fixed pattern.",
                "Bash",
                {
                    "command": "python -m timeit -s \"import re; p = re.compile(r'^[a-zA-Z0-9]+@'); s = 'a' * 50000 + '!'\" \"p.match(s)\""
                },
                "500 loops, best of 5: 412 usec per loop",
            ),
        ],
    ),
    (
        "parse-request-refactor",
        "Refactor parse_request in the HTTP server",
        [
            user(
                "parse_request in server/http.py is 300 lines. Split header parsing from body parsing and support chunked bodies."
            ),
            tool_turn(
                "Reading the function.",
                "Read",
                {"file_path": "server/http.py"},
                "def parse_request(raw: bytes) -> Request:\n    head, _, body = raw.partition(b'\\r\\n\\r\\n')\n    ...",
            ),
            assistant(
                "Split into parse_request_line, parse_headers and read_body; read_body handles Content-Length and "
                "Transfer-Encoding: chunked. parse_request now just composes them. Tests in tests/test_http.py pass."
            ),
        ],
    ),
    (
        "parse-request-query",
        "Query string parameters lost",
        [
            user("GET /search?q=shoes&page=2 reaches the handler with request.query == {}."),
            tool_turn(
                "Searching for where the query is parsed.",
                "Grep",
                {"pattern": "def parse_request", "path": "server"},
                "server/http.py:41:def parse_request(raw: bytes) -> Request:",
            ),
            assistant(
                "parse_request splits the target at '?' but assigns the query to a local variable and never stores "
                "it. Fix: `query = parse_qs(target.partition('?')[2])` and pass it to Request(query=query)."
            ),
        ],
    ),
    # --- git ------------------------------------------------------------------------------------
    (
        "git-rebase-conflict",
        "Rebase feature branch onto main",
        [
            user("Bring feature/payments up to date with main, keeping history linear."),
            tool_turn(
                "Rebasing.",
                "Bash",
                {"command": "git fetch origin && git rebase origin/main"},
                "CONFLICT (content): Merge conflict in payments/service.py\nerror: could not apply 4be1c2e... Add "
                'refunds\nhint: Resolve all conflicts manually, mark them as resolved with "git add/rm '
                '<conflicted_files>", then run "git rebase --continue".',
            ),
            assistant(
                "Resolved the conflict in payments/service.py (kept both the refund method and main's new retry "
                "logic), then `git add payments/service.py && git rebase --continue`. Push with "
                "`git push --force-with-lease`."
            ),
        ],
    ),
    (
        "git-squash",
        "Squash fixup commits before merging",
        [
            user("The PR has 9 commits like 'fix typo' and 'wip'. Clean it up into one commit."),
            assistant(
                "Interactive rebase onto the merge base and mark all but the first as fixup:\n\n```sh\ngit rebase -i "
                "$(git merge-base HEAD origin/main)\n# pick 1a2b3c Add export\n# fixup 4d5e6f wip\n```\n\nThen "
                "`git push --force-with-lease`."
            ),
            tool_turn(
                "Checking the result.",
                "Bash",
                {"command": "git log --oneline origin/main..HEAD"},
                "1a2b3c4 Add CSV export",
            ),
        ],
    ),
    (
        "git-revert-pushed",
        "Take back a commit that is already on origin",
        [
            user("I pushed a commit to main that breaks the build. Others already pulled. How do I get rid of it?"),
            assistant(
                "Don't reset a shared branch. Create an inverse commit instead:\n\n```sh\ngit revert 9f8e7d6\ngit push "
                "origin main\n```\n\nIf you had not pushed yet, `git reset --hard HEAD~1` (the reflog keeps it)."
            ),
            tool_turn(
                "Reverting.",
                "Bash",
                {"command": "git revert --no-edit 9f8e7d6 && git push origin main"},
                '[main 0c1d2e3] Revert "Switch to new pricing engine"',
            ),
        ],
    ),
    (
        "git-lfs",
        "Push rejected: file too large",
        [
            user(
                "git push fails: remote: error: File data/model.bin is 312.00 MB; this exceeds GitHub's file size limit of 100.00 MB"
            ),
            assistant(
                "The file is in history, so removing it in a new commit doesn't help. Move it to Git LFS and "
                "rewrite:\n\n```sh\ngit lfs migrate import --include='data/*.bin' --everything\n```"
            ),
            tool_turn(
                "Rewriting history.",
                "Bash",
                {"command": "git lfs migrate import --include='data/*.bin' --everything && git push --force"},
                "migrate: Sorting commits: ..., done.\nmigrate: Rewriting commits: 100% (214/214), done.",
            ),
        ],
    ),
    # --- APIs and misc --------------------------------------------------------------------------
    (
        "cors-error",
        "Frontend blocked by CORS",
        [
            user(
                "Access to fetch at 'http://localhost:8000/api/items' from origin 'http://localhost:5173' has been "
                "blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present."
            ),
            assistant(
                "Install django-cors-headers, add the middleware above CommonMiddleware, and set "
                "CORS_ALLOWED_ORIGINS = ['http://localhost:5173']."
            ),
            tool_turn(
                "Installing the package.",
                "Bash",
                {"command": "pip install django-cors-headers"},
                "Successfully installed django-cors-headers-4.4.0",
            ),
        ],
    ),
    (
        "login-rate-limit",
        "Throttle login attempts",
        [
            user("Someone is brute-forcing /api/login. Add rate limiting."),
            assistant(
                "Use a Redis-backed sliding window keyed by IP and username: 5 attempts per 15 minutes, then 429 Too "
                "Many Requests with Retry-After. With DRF: a ScopedRateThrottle with `'login': '5/15m'`."
            ),
            tool_turn(
                "Testing the throttle.",
                "Bash",
                {
                    "command": "for i in $(seq 7); do curl -s -o /dev/null -w '%{http_code} ' -X POST localhost:8000/api/login; done"
                },
                "401 401 401 401 401 429 429",
            ),
        ],
    ),
    (
        "cursor-pagination",
        "Paginate the events API without offsets",
        [
            user("GET /api/events?page=5000 is slow and shows duplicates when new events arrive."),
            assistant(
                "Switch to keyset (cursor) pagination on (created_at, id): return `next` as an opaque cursor "
                "encoding the last row, and query `WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id "
                "DESC LIMIT 50`."
            ),
            user("Can the cursor be tampered with?"),
        ],
    ),
    (
        "ts-possibly-undefined",
        "TypeScript strict mode errors",
        [
            user("After enabling strict, 140 errors like: error TS2532: Object is possibly 'undefined'."),
            assistant(
                "Fix them at the source: narrow with `if (!user) return`, use optional chaining `user?.email`, and "
                "give useState a type: `useState<User | null>(null)`. Avoid the `!` assertion except in tests."
            ),
            tool_turn("Counting what is left.", "Bash", {"command": "npx tsc --noEmit | grep -c TS2532"}, "17"),
        ],
    ),
    (
        "python-circular-import",
        "ImportError from a partially initialized module",
        [
            user(
                "ImportError: cannot import name 'Order' from partially initialized module 'shop.orders' (most likely "
                "due to a circular import)"
            ),
            assistant(
                "shop/orders.py imports shop/invoices.py at module level and invoices imports Order back. Move the "
                "import inside the function that needs it, or import the module (`from shop import orders`) instead "
                "of the name."
            ),
            tool_turn(
                "Checking the import graph.",
                "Bash",
                {"command": "python -X importtime -c 'import shop.orders' 2>&1 | tail -3"},
                "import time: 1203 | 4410 | shop.orders",
            ),
        ],
    ),
    (
        "nginx-502",
        "502 Bad Gateway after deploy",
        [
            user("The site returns 502 Bad Gateway since the deploy."),
            tool_turn(
                "Reading the nginx error log.",
                "Bash",
                {"command": "sudo tail -n 5 /var/log/nginx/error.log"},
                "connect() to unix:/run/gunicorn.sock failed (2: No such file or directory) while connecting to "
                "upstream",
            ),
            assistant(
                "gunicorn isn't running: the systemd unit failed because the new release path doesn't exist. Fix "
                "WorkingDirectory in gunicorn.service, then `systemctl restart gunicorn`."
            ),
        ],
    ),
    (
        "secrets-out-of-repo",
        "API keys committed to the repository",
        [
            user("We noticed the Stripe secret key is hardcoded in settings.py and committed. What now?"),
            assistant(
                "1. Rotate the key in the Stripe dashboard right away: it is compromised.\n2. Read secrets from the "
                "environment (`STRIPE_SECRET_KEY = os.environ['STRIPE_SECRET_KEY']`), keep a .env file locally and "
                "add it to .gitignore.\n3. Optionally purge history with git filter-repo."
            ),
            tool_turn(
                "Scanning for other secrets.",
                "Bash",
                {"command": "gitleaks detect --source . --no-banner"},
                'Finding: STRIPE_SECRET_KEY = "sk_live_..."\nFile: shop/settings.py\nleaks found: 1',
            ),
        ],
    ),
    (
        "structured-logging",
        "JSON logs for the log pipeline",
        [
            user("Loki can't parse our multi-line logs. Emit one JSON object per line with request ids."),
            assistant(
                "Use structlog with the JSONRenderer and a middleware that binds request_id to the contextvars:\n\n"
                "```python\nstructlog.configure(processors=[structlog.contextvars.merge_contextvars, "
                "structlog.processors.TimeStamper(fmt='iso'), structlog.processors.JSONRenderer()])\n```"
            ),
            user("Also include the user id when the request is authenticated."),
        ],
    ),
    (
        "websocket-timeout",
        "WebSocket disconnects every 60 seconds",
        [
            user("Our live dashboard's websocket closes with code 1006 exactly every minute in production."),
            assistant(
                "nginx closes idle proxied connections after proxy_read_timeout (60s default). Send a ping every 30s "
                "from the server, or raise `proxy_read_timeout 3600s;` in the location block for /ws/."
            ),
            tool_turn(
                "Editing the nginx config.",
                "Edit",
                {"file_path": "deploy/nginx/site.conf", "new_string": "location /ws/ { proxy_read_timeout 3600s; }"},
                "Updated deploy/nginx/site.conf",
            ),
        ],
    ),
    (
        "celery-retry-forever",
        "Celery task retries forever",
        [
            user("send_invoice_email keeps retrying for days after the SMTP server rejected the address."),
            assistant(
                "autoretry_for=(Exception,) also retries permanent errors. Retry only transient ones and cap it:\n\n"
                "```python\n@app.task(autoretry_for=(SMTPServerDisconnected, TimeoutError), max_retries=5, "
                "retry_backoff=True)\n```"
            ),
            tool_turn(
                "Finding the task.",
                "Grep",
                {"pattern": "autoretry_for", "path": "billing"},
                "billing/tasks.py:14:@app.task(autoretry_for=(Exception,), retry_backoff=True)",
            ),
        ],
    ),
]


QUERIES = [
    # exact error strings
    ("ECONNREFUSED", "error", {"pg-econnrefused-compose", "redis-econnrefused"}),
    ("relation does not exist", "error", {"django-relation-missing", "test-db-relation-missing"}),
    ("too many clients already", "error", {"pg-too-many-clients"}),
    ("port is already allocated", "error", {"docker-port-allocated"}),
    ("ExpiredSignatureError", "error", {"jwt-expired"}),
    ("Object is possibly 'undefined'", "error", {"ts-possibly-undefined"}),
    ("partially initialized module", "error", {"python-circular-import"}),
    ("CrashLoopBackOff", "error", {"k8s-crashloop"}),
    ("connection refused", "error", {"pg-refused-local", "redis-econnrefused", "pg-econnrefused-compose"}),
    # file names and paths
    ("models.py", "path", {"django-models-refactor", "django-data-migration", "jwt-refresh-rotation"}),
    (
        "docker-compose.yml",
        "path",
        {"pg-econnrefused-compose", "docker-network-containers", "docker-host-internal", "docker-port-allocated"},
    ),
    ("server/http.py", "path", {"parse-request-refactor", "parse-request-query"}),
    (".github/workflows/ci.yml", "path", {"ci-cache-npm"}),
    # identifiers
    ("useEffect", "identifier", {"react-useeffect-twice", "react-useeffect-deps", "react-stale-closure"}),
    ("parse_request", "identifier", {"parse-request-refactor", "parse-request-query"}),
    ("select_related", "identifier", {"django-n-plus-one"}),
    ("SESSION_COOKIE_SAMESITE", "identifier", {"cookie-samesite"}),
    # keywords, commands and phrases
    ("git rebase", "keyword", {"git-rebase-conflict", "git-squash"}),
    ("kubectl logs --previous", "keyword", {"k8s-crashloop"}),
    ("squashmigrations", "keyword", {"django-migration-squash"}),
    ('"position: sticky"', "phrase", {"css-sticky"}),
    ("catastrophic backtracking", "phrase", {"regex-catastrophic"}),
    ("cache pip dependencies", "keyword", {"ci-cache-pip"}),
    ("cache", "keyword", {"ci-cache-npm", "ci-cache-pip", "ci-docker-layer-cache"}),
    (
        "migrations",
        "keyword",
        {
            "django-migration-conflict",
            "django-migration-squash",
            "django-data-migration",
            "django-relation-missing",
            "test-db-relation-missing",
        },
    ),
    # pasted commands: websearch syntax reads "-k" and "-n" as NOT k, NOT n, which rules out the
    # very message holding the command (a message whose words are all there is still found)
    ("pytest -k discount", "keyword", {"flaky-test-order"}),
    ("kubectl logs -n prod", "keyword", {"k8s-crashloop"}),
    # ideas: natural language, few shared words
    ("my app container cannot reach the database", "idea", {"pg-econnrefused-compose", "docker-network-containers"}),
    ("component fetches data in an endless loop", "idea", {"react-useeffect-deps"}),
    ("test passes alone but breaks when the whole suite runs", "idea", {"flaky-test-order"}),
    ("login token considered expired too early", "idea", {"jwt-expired"}),
    ("page slow because of too many database queries", "idea", {"django-n-plus-one", "slow-query-index"}),
    ("undo a commit that was already pushed", "idea", {"git-revert-pushed"}),
    ("make CI faster by reusing downloaded packages", "idea", {"ci-cache-npm", "ci-cache-pip"}),
    ("dialog hidden under the header despite a high z-index", "idea", {"css-zindex-modal"}),
    ("service keeps restarting in the cluster", "idea", {"k8s-crashloop", "k8s-oomkilled"}),
    ("pattern matching takes forever on long strings", "idea", {"regex-catastrophic"}),
    ("keep credentials out of version control", "idea", {"secrets-out-of-repo"}),
    ("container killed for using too much memory", "idea", {"k8s-oomkilled", "node-memory-leak"}),
]
