//go:build !race

package mcp_test

const raceBuild = false
