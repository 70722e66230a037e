export { BuiltinBackend, type BuiltinBackendOptions } from './builtin-backend.ts';
