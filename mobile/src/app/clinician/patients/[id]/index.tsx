export { default } from '../../../../screens/clinician/PatientDetail';
