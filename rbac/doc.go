// Package rbac holds roles and permissions: the built-in roles and their scope table, and (as
// the RBAC issue lands) custom roles, wildcard matching, org/project scoping, conditions and
// the decision cache. It fails closed: anything it cannot decide is a deny.
package rbac
