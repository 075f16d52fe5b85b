package audit

// CapEvent is the writer's size cap, for the allocation test.
var CapEvent = capEvent
