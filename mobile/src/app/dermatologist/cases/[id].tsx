export { default } from '../../../screens/dermatologist/Review';
