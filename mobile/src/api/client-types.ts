import type { components } from './schema';

/** The backend's request and response bodies, generated from its OpenAPI document. */
export type Schemas = components['schemas'];
