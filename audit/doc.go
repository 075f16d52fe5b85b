// Package audit is the security event trail: event model, an asynchronous batched writer that
// never drops an event, a tamper-evident hash chain and queries. It imports nothing of ours.
// (Built in the audit issue; the foundation only reserves its place in the layout.)
package audit
