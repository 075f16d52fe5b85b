// Package rbac decides who may do what: permissions are "resource:action" patterns with '*'
// wildcards (Match, Covers), held through roles (built-in owner, admin, contributor, viewer, and
// custom roles with optional conditions: owner-only, source CIDRs, a UTC time window) assigned
// per organization and optionally per project, or through direct grants. The Authorizer answers
// requests from a Store (MongoStore; storetest is its conformance suite) and caches decisions
// per policy version (Versions: LocalVersions for one instance, RedisVersions across instances).
//
// What a call may do is decided by one rule (effective.go): the credential's scopes ∩ the
// subject's live grants, conditions then evaluated (Decide); handing out, taking back or
// administering permissions counts only what is held unconditionally, org-wide, within the
// scopes (Excess, ExcessOver). The guard and every tool check call these, never their own.
//
// It fails closed: a malformed permission, a store error or a panic is a deny, never an allow;
// and a cached decision is never used once the policy version it was made under has changed.
// rbac never imports mcp or tools.
package rbac
