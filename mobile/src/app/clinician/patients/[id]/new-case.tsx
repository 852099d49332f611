export { default } from '../../../../screens/clinician/NewCase';
