export { default } from '../../screens/dermatologist/Queue';
