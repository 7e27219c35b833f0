"""The verdict atlas: every claim of questions 1-3 decided across a grid of training conditions."""
