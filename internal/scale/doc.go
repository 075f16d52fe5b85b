// Package scale holds BenchmarkScale: the hot look-ups of the stores (auth, rbac, the API keys and
// sessions) at 10, 1,000 and 100,000 users on the store under test (the embedded FerretDB
// unless MCPAUTH_TEST_MONGO_URI), side by side in one run, with the ratio 100,000/10 of each.
// It has no code of its own: the benchmark is its test file.
package scale
