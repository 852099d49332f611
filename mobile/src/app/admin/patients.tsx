export { default } from '../../screens/admin/PatientAccess';
