//! A reference data volume: detected, refused with a way out, imported by `aof import --from-reference`.
