-- The service's tables (DESIGN.md, "The reference service"). Applied once, under the
-- migration lock: no IF NOT EXISTS, so a second run would fail loudly, not pass quietly.

CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,                -- stored lower-case: login looks it up
    password_hash text NOT NULL,               -- scrypt$n$r$p$salt$hash
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE links (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug text NOT NULL UNIQUE,                 -- the redirect's lookup; a deleted slug stays taken
    target_url text NOT NULL,
    owner_id bigint NOT NULL REFERENCES users (id),
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    deleted_at timestamptz                     -- soft delete: the redirect answers 410, not 404
);

-- Written by the drain (rung.TableSink, ON CONFLICT (id) DO NOTHING) and, when the queue is
-- unreachable, by the redirect itself. No foreign key: a click must never fail on its
-- link's lifecycle, and links are never hard-deleted.
CREATE TABLE clicks (
    id uuid PRIMARY KEY,
    link_id bigint NOT NULL,
    clicked_at timestamptz NOT NULL,
    referrer text,
    user_agent text
);

CREATE TABLE link_daily_stats (
    link_id bigint NOT NULL,
    day date NOT NULL,                         -- UTC
    clicks bigint NOT NULL,
    PRIMARY KEY (link_id, day)                 -- the rollup's upsert key, and stats by link
);

-- The highest fencing token each singleton job has used: a paused former holder's late
-- run is refused (rung.Singleton's fencing token, checked by the resource).
CREATE TABLE job_fences (
    job text PRIMARY KEY,
    token bigint NOT NULL
);
