export { Badge } from './Badge';
export { Banner } from './Banner';
export { Button } from './Button';
export { Card } from './Card';
export { Choice, type Option } from './Choice';
export { Field, Muted } from './Field';
export { Screen } from './Screen';
export { TextField } from './TextField';
export { colors, font, radius, space } from './theme';
