//! The reference's settings (environment variables) on our processes: accepted, mapped or refused.
