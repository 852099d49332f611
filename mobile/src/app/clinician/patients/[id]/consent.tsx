export { default } from '../../../../screens/clinician/Consent';
