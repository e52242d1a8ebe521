-- A runner key's scope (issue #20): the tags its runners may carry and the agents whose
-- runs it may claim. '{}' is no limit (every key made before this).
ALTER TABLE api_keys ADD COLUMN scope_tags TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN scope_agents TEXT[] NOT NULL DEFAULT '{}';
