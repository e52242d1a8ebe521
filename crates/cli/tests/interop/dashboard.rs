//! The reference dashboard (vite build) in chromium against our coordinator.
