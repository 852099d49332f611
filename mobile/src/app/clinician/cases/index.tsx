export { default } from '../../../screens/clinician/Cases';
