"""From graphs to kernels: `ir` (lowering and passes), `schedule` (fusion and buffers),
`render` (the templates). Every backend shares the first two."""
