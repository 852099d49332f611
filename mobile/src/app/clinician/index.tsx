export { default } from '../../screens/clinician/Patients';
